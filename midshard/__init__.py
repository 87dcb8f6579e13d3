"""midshard: Midjourney generations in Discord channels -> a training-ready WebDataset."""

__version__ = "0.1.0"
