"""What data sets exist: the registry of data-set specs, their on-disk layout, label CSVs and class dictionaries."""
