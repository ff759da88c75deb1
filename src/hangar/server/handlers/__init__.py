"""One module per resource. Handlers take a RequestContext and return JSON-able data; they never
check permissions (the guard has done that), but list handlers filter what they return."""
