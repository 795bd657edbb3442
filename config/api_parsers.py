"""The API's JSON parser: every operation takes a JSON object (or a form), never a bare array or
scalar, so a body of another shape is refused here, once, as a 400 in the house error shape
(config.api_errors) instead of reaching a view that reads it as a mapping."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

OBJECT_REQUIRED = "The request body must be a JSON object."


class JSONObjectParser(JSONParser):
    """JSONParser that accepts only an object at the top level. Raises ParseError otherwise."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError(OBJECT_REQUIRED)
        return data
