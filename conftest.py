"""Makes `pytest checks/ --topology FILE` behave like `xivo-doctor run --topology FILE`.

The plugin is inert for the project's own tests (`pytest tests/`): it only acts on check items.
"""

pytest_plugins = ["xivo_doctor.engine.plugin"]
