def shout(values):
    return [v.upper() for v in values] if isinstance(values, list) else values.upper()


def add_context(payload, params):
    return {**payload, "messages": payload["messages"] + [{"role": "user", "content": f"(n={params.get('max_tokens')})"}]}
