package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	texttemplate "text/template"

	"github.com/authd/authd/internal/auth"
)

//go:embed templates/*.txt templates/*.html
var templateFS embed.FS

// subjects holds the subject line of each template; a template without a
// subject is not an email authd sends.
var subjects = map[string]string{
	auth.TemplateWelcome:         "Welcome to authd",
	auth.TemplateVerifyEmail:     "Confirm your email address",
	auth.TemplateResetPassword:   "Reset your password",
	auth.TemplatePasswordChanged: "Your password was changed",
	auth.TemplateMFACode:         "Your sign-in code",
}

// templates holds the parsed text and HTML part of every email. It is
// read-only after parseTemplates, so safe for concurrent use.
type templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

type rendered struct {
	subject, text, html string
}

func parseTemplates() (*templates, error) {
	t := &templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for name := range subjects {
		tt, err := texttemplate.New(name+".txt").Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("mail: template %s: %w", name, err)
		}
		ht, err := htmltemplate.New(name+".html").Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("mail: template %s: %w", name, err)
		}
		t.text[name], t.html[name] = tt, ht
	}
	return t, nil
}

// render returns the subject and both parts of the named email. An unknown
// template or a key the template uses but data lacks is an error wrapping
// auth.ErrUndeliverable: no retry can fix it. The error names the template,
// never the data.
func (t *templates) render(name string, data map[string]string) (rendered, error) {
	subject, ok := subjects[name]
	if !ok {
		return rendered{}, fmt.Errorf("mail: no email template %q: %w", name, auth.ErrUndeliverable)
	}
	if data == nil {
		data = map[string]string{}
	}
	var text, html bytes.Buffer
	if err := t.text[name].Execute(&text, data); err != nil {
		return rendered{}, fmt.Errorf("mail: template %s: %w: %w", name, auth.ErrUndeliverable, err)
	}
	if err := t.html[name].Execute(&html, data); err != nil {
		return rendered{}, fmt.Errorf("mail: template %s: %w: %w", name, auth.ErrUndeliverable, err)
	}
	return rendered{subject: subject, text: text.String(), html: html.String()}, nil
}
