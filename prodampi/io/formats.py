"""Registry of the soil-profile input formats (``prepare.profiles.format`` in the deck).

The deck takes its ``choices`` from :data:`PROFILE_FORMATS`; prepare dispatches on it.  A format names its
reader (``module:function``) and the deck keys under ``prepare.profiles`` it needs, so a new format is
added here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class ProfileFormat:
    """One profile-table format.

    Attributes
    ----------
    name : the deck value (``prepare.profiles.format``)
    reader : ``"module:function"``; the function takes the resolved ``prepare.profiles`` deck section and
        returns a :class:`~prodampi.io.readers.ProfileTable`
    deck_keys : keys of ``prepare.profiles`` the format requires (non-null)
    doc : one line for ``prodampi validate --schema`` and the README
    """

    name: str
    reader: str
    deck_keys: tuple[str, ...]
    doc: str

    def load(self) -> Callable[[dict[str, Any]], Any]:
        """The reader function."""
        mod, fn = self.reader.split(":")
        return getattr(import_module(mod), fn)


PROFILE_FORMATS: dict[str, ProfileFormat] = {}


def register(fmt: ProfileFormat) -> None:
    """Add a format to :data:`PROFILE_FORMATS` (names are unique)."""
    if fmt.name in PROFILE_FORMATS:
        raise ValueError(f"profile format {fmt.name!r} registered twice")
    PROFILE_FORMATS[fmt.name] = fmt


register(ProfileFormat("isis", "prodampi.io.profile_tables:read_isis_deck", ("sites", "horizons"),
                       "ISRIC ISIS reference profiles (GSIF site + horizon tables)"))
register(ProfileFormat("afsp", "prodampi.io.profile_tables:read_afsp_deck", ("sites", "horizons"),
                       "African Soil Profiles database (GSIF AfSP site + horizon tables)"))
register(ProfileFormat("wosis2019", "prodampi.io.wosis:read_wosis2019_deck", ("snapshot_dir",),
                       "WoSIS 2019-09 snapshot: profiles + wide chemical and physical layer TSVs"))
register(ProfileFormat("wosis2023", "prodampi.io.wosis:read_wosis2023_deck", ("snapshot_dir",),
                       "WoSIS 2023-12 snapshot: sites/profiles/layers + one TSV per property "
                       "(layout unconfirmed; columns read by name)"))


def get_format(name: str) -> ProfileFormat:
    """The registered format ``name``; ``KeyError`` naming the allowed values otherwise."""
    try:
        return PROFILE_FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown profile format {name!r}; allowed: {', '.join(PROFILE_FORMATS)}") from None
