"""The governed registry: catalog.schema.model, versions, aliases, lineage and audit."""
