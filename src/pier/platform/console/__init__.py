"""The web console at /console/ (docs/console.md): pages, actions, sessions, charts.

`ConsoleApi` and `ConsoleLinkApi` (pier.platform.console.app) are Apis of the platform's front
door, added to its list in pier.platform.server.
"""
