"""Built-in model specs, their JSON Schema and the parity goldens: data, shipped as ``worldflux.specs``.

Read through ``importlib.resources.files("worldflux.specs")`` (``models/*.yaml``,
``schema/model-spec.v1.schema.json``, ``parity/<family>/*.safetensors``), never by walking up to
a checkout.
"""
