from django.core.exceptions import ImproperlyConfigured


class MissingRequiredSetting(ImproperlyConfigured):
    """A setting the console cannot start without (DEBUG off and no SECRET_KEY, say)."""
