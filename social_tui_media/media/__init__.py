"""One media file's life: fetched safely, typed from its bytes, cached by content, copied to the
S3 archive, described by the vision model. Tools only: the jobs decide which rows they work on."""
