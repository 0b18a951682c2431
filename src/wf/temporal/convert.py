"""wf's data converter: the SDK's JSON, the same bytes, with each dataclass's fields and type
hints read once per class instead of once per value.

What travels (``shapes.py``) is dataclasses, some in lists of hundreds (a run's events). The
SDK's JSON converter calls ``dataclasses.asdict`` (a deep copy) for each one it encodes and
``typing.get_type_hints`` (an evaluation of every annotation) for each one it decodes: about
a seventh of a worker's CPU on a run of no-op tasks. Here a dataclass encodes as a shallow
dict, which the JSON encoder walks on its own (the same JSON: ``sort_keys``, no spaces), and
decodes with a plan made once per class. Payloads written by the SDK's own converter read the
same, and the other way round: a client without this converter (a test, ``temporal
workflow show``) reads wf's workflows as before.

Pure, no I/O. The converter is made outside the sandbox and its module is never imported
afresh in it, so the plans made in one workflow run serve the next. Its tables hold their
classes weakly: a dataclass of a module the sandbox imports afresh for every run (none
travels today) would not keep each run's copy alive.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, get_type_hints

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)

# (name, type hint, init) per field, per dataclass: made on first use, read after.
_PLANS: weakref.WeakKeyDictionary[type, tuple[tuple[str, Any, bool], ...]] = \
    weakref.WeakKeyDictionary()
_NAMES: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = get_type_hints(cls)
        plan = tuple((f.name, hints[f.name], f.init) for f in dataclasses.fields(cls))
        _PLANS[cls] = plan
    return plan


class Encoder(AdvancedJSONEncoder):
    """A dataclass as the dict of its fields, not copied: the encoder walks the values."""

    def default(self, o: Any) -> Any:
        cls = type(o)
        names = _NAMES.get(cls)
        if names is None:
            if not dataclasses.is_dataclass(cls):
                return super().default(o)
            names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
        return {name: getattr(o, name) for name in names}


class Dataclasses(JSONTypeConverter):
    """Decodes a dataclass by its plan; anything else is left to the SDK's ``value_to_type``.
    The same rules as the SDK's: unknown keys are ignored, a missing required field fails
    when the class is made, ``init=False`` fields are set after."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        if not isinstance(value, dict):
            raise TypeError(f"Cannot convert to dataclass {hint}, value is {type(value)} "
                            "not dict")
        converters = (self,)
        given: dict[str, Any] = {}
        later: dict[str, Any] = {}
        for name, field_hint, init in _plan(hint):
            if name not in value:
                continue
            try:
                converted = value_to_type(field_hint, value[name], converters)
            except Exception as err:
                raise TypeError(f"Failed converting field {name} on dataclass {hint}") from err
            (given if init else later)[name] = converted
        obj = hint(**given)
        for name, converted in later.items():
            object.__setattr__(obj, name, converted)
        return obj


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, with wf's JSON in place of the plain JSON one."""

    def __init__(self) -> None:
        super().__init__(*(
            JSONPlainPayloadConverter(encoder=Encoder, custom_type_converters=[Dataclasses()])
            if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters))


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)
