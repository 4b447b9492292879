"""Keyword spotting from visual tags (Kamper et al. 2017, 2019): vocabulary, metrics, evaluation."""
