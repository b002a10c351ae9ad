"""The report's sections, one renderer per section, grouped by pipeline stage.

Each renderer takes the run (:class:`hardmine.report.run.RunArtifacts`) and the report's options as
keywords, and returns the section's HTML; :mod:`hardmine.report.page` puts them in page order.
"""
