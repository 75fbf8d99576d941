package satellite

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	secretNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	secretRefPattern  = regexp.MustCompile(`^\$\{\{\s*secrets\.([A-Za-z][A-Za-z0-9_-]*)\s*\}\}$`)
	envNamePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// SecretName normalises one secretEnv value to the secret's name: both
// "${{ secrets.NAME }}" and a bare "NAME" give NAME. It returns EINVALID for
// anything else.
func SecretName(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if m := secretRefPattern.FindStringSubmatch(ref); m != nil {
		return m[1], nil
	}
	if secretNamePattern.MatchString(ref) {
		return ref, nil
	}
	return "", Errorf(EINVALID, "secret reference %q is neither ${{ secrets.NAME }} nor a bare NAME", ref)
}

// SecretEnv returns the collector's declared secret environment as env
// variable name -> secret name. It returns ENOTFOUND when the collector
// declares no secretEnv and EINVALID when the declaration is malformed.
func (c Collector) SecretEnv() (map[string]string, error) {
	raw, ok := c.Config["secretEnv"]
	if !ok || raw == nil {
		return nil, Errorf(ENOTFOUND, "Collector %s declares no secretEnv", c.ID)
	}
	decl, ok := raw.(map[string]any)
	if !ok {
		return nil, Errorf(EINVALID, "Collector %s: secretEnv must be an object", c.ID)
	}
	if len(decl) == 0 {
		return nil, Errorf(ENOTFOUND, "Collector %s declares no secretEnv", c.ID)
	}
	env := make(map[string]string, len(decl))
	for envName, v := range decl {
		if !envNamePattern.MatchString(envName) {
			return nil, Errorf(EINVALID, "Collector %s: %q is not a valid environment variable name", c.ID, envName)
		}
		ref, ok := v.(string)
		if !ok {
			return nil, Errorf(EINVALID, "Collector %s: secretEnv.%s must be a string", c.ID, envName)
		}
		name, err := SecretName(ref)
		if err != nil {
			return nil, err
		}
		env[envName] = name
	}
	return env, nil
}

// SecretNames returns the distinct secret names an env mapping refers to, sorted.
func SecretNames(env map[string]string) []string {
	seen := make(map[string]bool, len(env))
	names := make([]string, 0, len(env))
	for _, n := range env {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// SecretRef returns the secret name of a string value that is exactly a
// secret reference, "${{ secrets.NAME }}" (spaces inside the braces
// allowed), and false for any other value.
func SecretRef(value string) (string, bool) {
	if m := secretRefPattern.FindStringSubmatch(strings.TrimSpace(value)); m != nil {
		return m[1], true
	}
	return "", false
}

// SecretRefs walks a config (decoded JSON) and returns, by field path, the
// secret name of every string value that is a secret reference. Paths join
// object keys with "." and index arrays as "[i]": "auth.password",
// "headers[0].value". Nothing else of the config is returned.
func SecretRefs(config any) map[string]string {
	refs := map[string]string{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(child, p)
			}
		case []any:
			for i, child := range v {
				walk(child, path+"["+strconv.Itoa(i)+"]")
			}
		case string:
			if name, ok := SecretRef(v); ok {
				refs[path] = name
			}
		}
	}
	walk(config, "")
	return refs
}
