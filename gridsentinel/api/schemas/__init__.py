"""API schemas: request bodies (``requests``) apart from response bodies (``responses``)."""
