"""An external world model written without worldflux (tinyworld.py) and its adapter (adapter.py).

Used by tests/test_conformance_external.py and the worked example in docs/conformance.md.
"""
