"""The report as a document (sections of figures, tables and text), its wording, plots and Markdown/HTML."""
