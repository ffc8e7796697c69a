"""Official Account user tags: models, services and admin."""
