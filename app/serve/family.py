"""The memories that a request about a whole family goes over (Which memory knows this?, Batch): those of the chosen
family that the visitor may pick, each with one base of that family."""
from . import contract, memories
from .engine import Engine, InputError


def chosen(engine: Engine, base=None, family=None, owner: str | None = None) -> tuple[str, str | None, list]:
    """(base, family, [(label, memory name)]): family None or "" is the base's own; a family named must be the base's
    (its memories read that base's token ids). owner: the visitor whose own memories are listed too."""
    base = engine.base_name(base)
    families = dict.fromkeys(engine.family.values())
    if family in (None, "") or not families:  # an engine of one unnamed family has no family to choose
        family = engine.family.get(base)
    else:
        family = contract.choice("model family", family, families)
        if engine.family.get(base) != family:
            raise InputError(f"base {base!r} is not of the {family} family; choose one of "
                             f"{', '.join(n for n in engine.bases if engine.family.get(n) == family)}")
    listed = memories.of(engine).choices(owner, family)
    if not listed:
        raise InputError(f"the {family} family has no memory to ask")
    return base, family, listed
