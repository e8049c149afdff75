"""Server-side operations on the database and the store: jobs, blobs, tokens, companies, auth, gc, fsck."""
