"""Files that ship inside the package: the templates and the migrations.

They are found with importlib.resources, so a wheel installed anywhere finds them as a
checkout does (in a checkout, voisobot/templates is a link to the top-level templates/).
The bot runs from a directory on disk, never from a zip: Jinja and SQLite read real files.
"""

from importlib import resources
from pathlib import Path


def packaged(*parts: str) -> Path:
    """A directory shipped inside the voisobot package, as a path on disk."""
    return Path(str(resources.files("voisobot").joinpath(*parts)))
