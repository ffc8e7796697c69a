"""Exception reports (error e-mails, debug pages) that never carry a secret."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

from console.encryption import Secret


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    # Django's pattern plus the platforms' words for credentials.
    hidden_settings = re.compile(
        "API|AES|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|ENCRYPT", flags=re.IGNORECASE
    )

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        parameters = super().get_post_parameters(request)
        if request is None:
            return parameters
        cleansed = parameters.copy()
        for name in cleansed:
            if self.hidden_settings.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def cleanse_special_types(self, request: HttpRequest | None, value: Any) -> Any:
        if isinstance(value, Secret):
            return self.cleansed_substitute
        return super().cleanse_special_types(request, value)
