"""The tidy table -> the frames every section reads, each computed once (``derived.Derived``)."""
