// Package repository is the model repository: a blob bucket (a local
// directory by default, or any bucket URL gocloud.dev/blob supports) holding
// model files and generated variant graphs, addressed by the SHA-256 digest
// of their content. Writes are atomic per object and idempotent; every read
// is verified against its digest.
package repository
