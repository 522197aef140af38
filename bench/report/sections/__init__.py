"""One module per report section; each reads the derived frames and never another section."""
