"""equivtrain: the training toolkit of equivd (see Training/README.md)."""
