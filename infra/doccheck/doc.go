// Package doccheck holds the test that keeps the documentation's links
// true: every relative link in README.md and docs/ names a file that exists,
// and every #anchor a heading of its target, by GitHub's anchor rules.
package doccheck
