"""Reading and writing ratings: file -> RatingData (integer indices and ID maps), splits, synthetic
and public data sets."""
