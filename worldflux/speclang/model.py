"""``Spec``: one validated spec document and the facts the generator derives from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldflux.speclang.yaml_io import YamlDocument

__all__ = ["RESERVED_CONFIG_FIELDS", "Spec"]

#: Config fields every model has (from ``default_env`` / the registry); a spec may not declare them.
RESERVED_CONFIG_FIELDS: tuple[str, ...] = ("action_dim", "action_type", "model_type", "obs_shape")


@dataclass(frozen=True)
class Spec:
    """A spec that passed structural validation.

    Attributes:
        source: the spec path relative to the project root, POSIX style
            (``specs/models/tdmpc2.yaml``); generated files name it in their header.
        data: the document as plain Python values.
        doc: the parsed YAML (for locating problems).
        sha256: SHA-256 of the file's bytes ("" for a spec given as text); generated catalogs
            record it so a stale generated package is detected.
    """

    source: str
    data: dict[str, Any]
    doc: YamlDocument = field(compare=False, repr=False)
    sha256: str = field(default="", compare=False)

    @property
    def model_type(self) -> str:
        return str(self.data["model_type"])

    @property
    def class_name(self) -> str:
        return str(self.data["class_name"])

    @property
    def config_class_name(self) -> str:
        """``<class_name>Config``."""
        return f"{self.class_name}Config"

    @property
    def config_properties(self) -> dict[str, dict[str, Any]]:
        """Hyperparameter name -> its JSON Schema."""
        props: dict[str, dict[str, Any]] = self.data["config"].get("properties", {})
        return props

    @property
    def config_defaults(self) -> dict[str, Any]:
        """Hyperparameter name -> default value."""
        return {name: prop.get("default") for name, prop in self.config_properties.items()}

    def config_json_schema(self) -> dict[str, Any]:
        """A closed JSON Schema object of the hyperparameters (validates presets and defaults)."""
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": self.config_properties,
        }

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        """Preset name -> ``{config, params[, description]}``."""
        presets: dict[str, dict[str, Any]] = self.data["presets"]
        return presets

    @property
    def aliases(self) -> dict[str, str]:
        """Alias -> preset of this model."""
        return dict(self.data.get("aliases", {}))

    def document(self) -> Any:
        """The spec as a ``worldflux.generated.spec_models.ModelSpec`` (typed access)."""
        # deferred: the typed spec models (~50 ms of pydantic classes) are built only when asked for
        from worldflux.generated.spec_models import ModelSpec

        return ModelSpec.model_validate(self.data)

    @property
    def default_env(self) -> dict[str, Any]:
        env: dict[str, Any] = self.data["default_env"]
        return env
