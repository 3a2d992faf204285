"""Trending-papers email digest."""
