from django.core.exceptions import ImproperlyConfigured


class ConfigurationError(ImproperlyConfigured):
    """A setting the console cannot start with; the message is a sentence naming the setting."""


class MissingRequiredSetting(ConfigurationError):
    """A setting the console cannot start without (DEBUG off and no SECRET_KEY, say)."""


class InvalidSetting(ConfigurationError):
    """A setting whose value the console cannot use (a DATABASE_URL that is no URL, say)."""
