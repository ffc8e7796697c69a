"""WeCom strategy tags (规则组 → tag groups → tags): models, services, pulls, the tree page."""
