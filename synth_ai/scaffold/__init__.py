"""`synth-ai init`: a new task-app project from the template in `template/`."""

from .project import ProjectExists, create_project

__all__ = ["ProjectExists", "create_project"]
