"""README's configuration reference (every key, type, default, meaning), generated from the models."""
from __future__ import annotations

import re

from pydantic import BaseModel

from hardmine.config.model import Config


def reference_markdown() -> str:
    """The configuration reference (every key, type, default, meaning) as Markdown tables."""

    def type_name(ann) -> str:
        # section classes print as hardmine.config.<module>.<Name>: the reference shows <Name> only
        s = re.sub(r"hardmine\.config\.(?:\w+\.)*", "", str(ann).replace("typing.", ""))
        return s.replace("<class '", "").replace("'>", "")

    out = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        rows, subs = [], []
        for name, f in model.model_fields.items():
            ann = f.annotation
            args = getattr(ann, "__args__", ()) or ()
            sub = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if sub is not None and name != "fault_injection":
                subs.append((sub, f"{prefix}{name}."))
                if ann is sub:
                    continue
            default = "required" if f.is_required() else (
                repr(f.default_factory()) if f.default_factory is not None else repr(f.default)
            )
            if isinstance(f.default, BaseModel):
                continue
            rows.append(f"| `{prefix}{name}` | `{type_name(ann)}` | `{default}` | {f.description or ''} |")
        if rows:
            out.append(f"\n**{prefix.rstrip('.') or 'top level'}**\n\n| key | type | default | meaning |\n|---|---|---|---|")
            out.extend(rows)
        for sub, p in subs:
            walk(sub, p)

    walk(Config, "")
    return "\n".join(out)
