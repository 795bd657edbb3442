"""The request-body cap of uploads, enforced while Django reads the body, before it is buffered.

Django streams an upload's chunks through its upload handlers (memory for small files, a temporary
file on disk beyond FILE_UPLOAD_MAX_MEMORY_SIZE), so a file never sits whole in the web process's
memory; but nothing stops a 5 GB body from being written to disk. This handler runs first: a body
whose Content-Length is over the cap is not read at all, and a body without one (chunked) is cut
off at the cap. The view finds `request.upload_too_large` and answers with the dataset refusal.
"""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

# Room for the multipart boundaries and the other form fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class CappedUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.received = 0
        if content_length and content_length > settings.DATASET_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
            self.request.upload_too_large = True
            return QueryDict(encoding=encoding), MultiValueDict()  # parse nothing of the body
        return None

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.DATASET_MAX_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data  # the next handler (memory or temporary file) keeps it

    def file_complete(self, file_size):
        return None
