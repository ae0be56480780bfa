"""Dataset sources, one module per family; each turns files or bundled data into a raw-pixel :class:`Pool`."""
