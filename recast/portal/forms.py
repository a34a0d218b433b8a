"""The submit form, generated from an analysis' input schema, and the mapping of
the services' errors (JSON paths) back onto its fields."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile

from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput, RecastError
from recast.credentials.selectors import credentials_of
from recast.reinterpretation.inputs import patch_names

POINT, PATCHES, PATTERN, PATCHSET = "point", "patches", "scan", "patchset"
CREDENTIALS = "credentials"
INPUT = "input_"  # prefix of the fields made from the input schema
PATH = re.compile(r"^(?:[\w.-]+: )?\$((?:\.[\w-]+|\[\d+\])*)")


def schema_field(key: str, schema: dict[str, Any]) -> forms.Field:
    """A form field for one property of the input schema. Nothing is required
    here: the schema's own rules (required, oneOf) are checked by the service,
    which names the field at fault."""
    label = str(schema.get("title") or key)
    help_text = str(schema.get("description") or "")
    common: dict[str, Any] = {
        "label": label,
        "help_text": help_text,
        "required": False,
    }
    kind = schema.get("type")
    if schema.get("format") == "file":
        return forms.FileField(**common)
    if "enum" in schema:
        choices = [("", "—")] + [(json.dumps(v), str(v)) for v in schema["enum"]]
        return forms.ChoiceField(choices=choices, **common)
    if kind == "integer":
        return forms.IntegerField(**common)
    if kind == "number":
        return forms.FloatField(**common)
    if kind == "boolean":
        return forms.NullBooleanField(**common)
    if kind in ("object", "array"):
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    return forms.CharField(**common)


class SubmitForm(forms.Form):
    """One point (from the input schema's fields) or, for an analysis with a
    patchset, a scan: chosen patches, a pattern over their names, or an
    uploaded patchset. For a signed-in ``owner``, also which of their
    credentials the steps are handed (names only)."""

    mode = forms.ChoiceField(
        label="What to run", widget=forms.RadioSelect, initial=POINT
    )
    name = forms.CharField(
        label="Point name",
        required=False,
        max_length=200,
        help_text="optional: a name for the point (one point only)",
    )

    def __init__(
        self,
        analysis: Analysis,
        *args: Any,
        owner: User | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.analysis = analysis
        properties = analysis.input_schema.get("properties", {})
        self.schema_keys = list(properties)
        for key, schema in properties.items():
            self.fields[f"{INPUT}{key}"] = schema_field(key, schema)

        modes = [(POINT, "One point, from the inputs below")]
        names = patch_names(analysis)
        if names:
            modes.append((PATCHES, "A scan of patches chosen from the patchset"))
            modes.append((PATTERN, "A scan of every patch whose name matches"))
            self.fields["patches"] = forms.MultipleChoiceField(
                label="Patches of the patchset",
                choices=[(n, n) for n in names],
                required=False,
                widget=forms.CheckboxSelectMultiple,
            )
            self.fields["scan"] = forms.CharField(
                label="Pattern over the patch names",
                required=False,
                help_text="for instance stop_450_* (* and ? match any characters)",
            )
        if analysis.kind == Analysis.Kind.PUBLIC_LIKELIHOOD:
            modes.append((PATCHSET, "A scan of every patch of an uploaded patchset"))
            self.fields["patchset"] = forms.FileField(
                label="Patchset file",
                required=False,
                help_text="a pyhf patchset (JSON) made for this background-only "
                "workspace",
            )
        mode = self.fields["mode"]
        assert isinstance(mode, forms.ChoiceField)
        mode.choices = modes
        if owner is not None:
            self.fields[CREDENTIALS] = credentials_field(owner)

    @property
    def offers_credentials(self) -> bool:
        # A bound field with no choices is falsy in a template, so the
        # template asks this instead.
        return CREDENTIALS in self.fields

    def input_fields(self) -> list[forms.BoundField]:
        return [self[f"{INPUT}{key}"] for key in self.schema_keys]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        mode = self.cleaned_data.get("mode")
        if mode == PATCHES and not self.cleaned_data.get("patches"):
            self.add_error("patches", "choose at least one patch for the scan")
        if mode == PATTERN and not self.cleaned_data.get("scan"):
            self.add_error("scan", "give a pattern, for instance stop_450_*")
        if mode == PATCHSET and not self.cleaned_data.get("patchset"):
            self.add_error("patchset", "choose a patchset file to upload")
        return cleaned

    def point(self) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        """The point's inputs (typed as the schema says) and uploaded files
        (name and bytes)."""
        inputs: dict[str, Any] = {}
        uploads: dict[str, tuple[str, bytes]] = {}
        properties = self.analysis.input_schema.get("properties", {})
        for key in self.schema_keys:
            value: Any = self.cleaned_data.get(f"{INPUT}{key}")
            if value is None or value == "":
                continue
            if isinstance(value, UploadedFile):
                uploads[key] = (value.name or key, value.read())
            elif "enum" in properties[key]:
                inputs[key] = json.loads(value)
            elif properties[key].get("type") in ("object", "array"):
                inputs[key] = self.parsed_json(key, value)
            else:
                inputs[key] = value
        return inputs, uploads

    def parsed_json(self, key: str, value: str) -> Any:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"$.{key}: not valid JSON ({exc})") from None

    def scan_source(self) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        """What the submission service takes for a scan: data and files."""
        mode = self.cleaned_data["mode"]
        if mode == PATCHES:
            return {"patches": self.cleaned_data.get("patches") or []}, {}
        if mode == PATTERN:
            return {"scan": self.cleaned_data.get("scan", "")}, {}
        upload = self.cleaned_data["patchset"]
        return {}, {"patchset": (upload.name or "patchset.json", upload.read())}

    def show_error(self, error: RecastError) -> None:
        """Put the service's error next to the field its JSON path names (the
        message's own, or that of its first detail), else above the form."""
        paths = [error.message, *(str(d.get("path", "")) for d in error.details)]
        field = next((f for f in map(self.field_for, paths) if f), None)
        self.add_error(field, error.message)

    def field_for(self, text: str) -> str | None:
        match = PATH.match(text)
        if not match or not match.group(1):
            return None
        first = re.split(r"[.\[]", match.group(1).lstrip("."))[0]
        if first in (PATCHES, PATTERN, PATCHSET, CREDENTIALS) and first in self.fields:
            return first
        if self.cleaned_data.get("mode") != POINT:
            return None
        return f"{INPUT}{first}" if first in self.schema_keys else None


def credentials_field(owner: User) -> forms.MultipleChoiceField:
    """Checkboxes of the owner's credentials, by name. It is there even when
    they have none, so that a name deleted since the page was drawn is refused
    at the field rather than dropped."""
    names = credentials_of(owner).order_by("name").values_list("name", flat=True)
    return forms.MultipleChoiceField(
        label="Your credentials",
        choices=[(n, n) for n in names],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="handed to the steps while they run, for private inputs; "
        "steps that get them are never cached",
        error_messages={
            "invalid_choice": "you have no credential named '%(value)s' (deleted? "
            "add it again on the Credentials page)"
        },
    )


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name", required=False, max_length=100, help_text="what it is for"
    )
    days = forms.IntegerField(
        label="Valid for (days)", min_value=1, max_value=3650, initial=90
    )


class CredentialForm(forms.Form):
    """The service checks the name and value again and names the field."""

    name = forms.CharField(
        label="Name",
        max_length=64,
        help_text="lower-case letters, digits, '-' and '_'; requests name it",
    )
    value = forms.CharField(
        label="Value",
        max_length=16_384,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="the token or key; stored encrypted, never shown again",
    )
    description = forms.CharField(
        label="Description", required=False, max_length=200, help_text="what it opens"
    )
