"""Translations for the web interface: every string a user sees goes through ``gettext``.

Templates mark text with ``{% trans %}`` or ``_()``; Python code with ``_()`` from here. The
interface ships in English, so the default catalogue is the identity. A deployment puts
compiled catalogues (``<locale>/LC_MESSAGES/rogatory.mo``) in a folder and names it and the
language in ``web_application``; ``pybabel extract`` (or ``xgettext``) over ``node/web`` finds
every marked string.
"""

from __future__ import annotations

import gettext
from pathlib import Path

__all__ = ["DOMAIN", "load_translations"]

DOMAIN = "rogatory"


def load_translations(folder: Path | None = None,
                      language: str = "en") -> gettext.NullTranslations:
    if folder is None:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(folder), languages=[language],
                               fallback=True)
