"""Mail as bytes and text: parsing, the MIME writer, templates, thread tokens, language (pure)."""
