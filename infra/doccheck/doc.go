// Package doccheck holds the tests that keep the documentation true: every
// relative link in README.md and docs/ names a file that exists, and every
// #anchor a heading of its target, by GitHub's anchor rules; and the
// parameter table of docs/DEPLOY.md lists every parameter of template.yaml
// with its default.
package doccheck
