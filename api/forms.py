"""Validation of what parents submit: the enquiry form behind ``POST /api/enquiries/``."""

from __future__ import annotations

import re

from django import forms

from api.models import Enquiry, Program

# Loose on purpose: parents type numbers in every national format; what matters is that it can
# be dialled, not that it matches one country's plan.
_PHONE_CHARACTERS = re.compile(r"^[\d\s+\-()]+$")
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 20
CHILD_AGE_MIN_YEARS = 1
CHILD_AGE_MAX_YEARS = 7


# ModelForm is generic only in the type stubs; at run time it cannot be subscripted.
class EnquiryForm(forms.ModelForm):  # type: ignore[type-arg]
    child_age_years = forms.IntegerField(
        min_value=CHILD_AGE_MIN_YEARS,
        max_value=CHILD_AGE_MAX_YEARS,
        error_messages={
            "min_value": f"We take children aged {CHILD_AGE_MIN_YEARS} to {CHILD_AGE_MAX_YEARS} years.",
            "max_value": f"We take children aged {CHILD_AGE_MIN_YEARS} to {CHILD_AGE_MAX_YEARS} years.",
            "invalid": "Enter the child's age in whole years.",
        },
    )
    program = forms.ModelChoiceField(
        queryset=Program.objects.filter(is_active=True),
        to_field_name="slug",
        required=False,
        error_messages={"invalid_choice": "There is no open program with this slug."},
    )
    consent = forms.BooleanField(
        required=True,
        error_messages={"required": "Consent is required: we can only store your details with it."},
    )
    message = forms.CharField(required=False, max_length=4000)

    class Meta:
        model = Enquiry
        fields = [
            "parent_name",
            "phone",
            "email",
            "child_name",
            "child_age_years",
            "program",
            "message",
            "consent",
        ]

    def clean_phone(self) -> str:
        phone: str = self.cleaned_data["phone"].strip()
        if not _PHONE_CHARACTERS.match(phone):
            raise forms.ValidationError(
                "Use only digits, spaces, +, - and parentheses in the phone number.", code="invalid"
            )
        digit_count = sum(character.isdigit() for character in phone)
        if not PHONE_MIN_DIGITS <= digit_count <= PHONE_MAX_DIGITS:
            raise forms.ValidationError(
                f"A phone number has {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits.", code="invalid"
            )
        return phone
