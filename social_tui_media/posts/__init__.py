"""Scraped posts: reading their files and turning each post into the rows the store takes."""
