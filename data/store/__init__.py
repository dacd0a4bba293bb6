"""Where frames live: the per-video SQLite frame store, JPEG decoders, video-file IO and atomic file writes."""
