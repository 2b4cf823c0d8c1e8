"""One module per publisher layout; each turns files on disk or a Hub copy into normalized records."""
