package access

import (
	"os/exec"
	"runtime"
)

// OpenBrowser opens url in the person's default browser: xdg-open on
// Linux and the BSDs, open on macOS, the URL handler on Windows.
func OpenBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; its outcome is the browser's business
	return nil
}
