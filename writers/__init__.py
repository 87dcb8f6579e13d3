"""Writers: deterministic split, WebDataset shards and everything written beside them."""
