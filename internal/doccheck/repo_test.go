package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the module's root, two directories up.
const repoRoot = "../.."

// repoDocs returns the Markdown files of the repository, outside hidden
// directories and testdata.
func repoDocs(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(name), ".md") {
			files = append(files, path)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// TestRepoLinks checks every relative link and heading anchor of README.md
// and docs/.
func TestRepoLinks(t *testing.T) {
	_, err := os.Stat(filepath.Join(repoRoot, "go.mod"))
	require.NoError(t, err, "the module's root")
	files := repoDocs(t)
	require.Contains(t, files, filepath.Join(repoRoot, "README.md"))
	problems, checked, err := Check(files...)
	require.NoError(t, err)
	for _, p := range problems {
		t.Errorf("broken link: %s", p)
	}
	assert.Greater(t, checked, 20, "links checked in %d files", len(files))
	t.Logf("%d relative links checked in %d files", checked, len(files))
}

// TestReadmeLinksEveryDoc: a page of docs/ that the README does not link is
// a page no one finds.
func TestReadmeLinksEveryDoc(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	linked := make(map[string]bool)
	for _, l := range parse(string(b)).links {
		path, _, _ := strings.Cut(l.target, "#")
		linked[filepath.Clean(path)] = true
	}
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, pages)
	for _, p := range pages {
		rel, err := filepath.Rel(repoRoot, p)
		require.NoError(t, err)
		assert.True(t, linked[rel], "README.md does not link %s", filepath.ToSlash(rel))
	}
}
