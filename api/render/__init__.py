"""Explanations and port answers as people read them: Markdown, a terminal report, Slack Block Kit.

Text that comes from telemetry is untrusted: each renderer makes it inert for its medium.
"""
