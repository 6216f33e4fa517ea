"""The self-contained HTML report: the document, its view model, the topology picture,
the changes section and the jinja2 templates.
"""
