"""The tidy table -> the frames every section reads, computed once (``derive``)."""
