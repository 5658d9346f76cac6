"""The inference log's lifecycle: writing readings, hourly rollups, archive and retention."""
