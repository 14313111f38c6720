package repository

// Cloud buckets: any of these URL schemes works as --repository or as a
// registration's model URL, with the provider's usual credentials.
import (
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/s3blob"    // s3://
)
