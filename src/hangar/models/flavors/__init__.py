"""Built-in flavors. Each module offers ``save_model``, ``load_model`` and ``_load_pyfunc``."""
