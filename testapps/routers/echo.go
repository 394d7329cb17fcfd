package main

import (
	"net/http"

	"github.com/labstack/echo"
	"github.com/labstack/echo/middleware"
)

// echoHandler: echo with middleware.Recover() and a middleware that gives the request a new
// context (echo runs both after routing); /api/v1 is a Group. Its 404 and 405 are echo's
// default error handler's JSON answers.
func echoHandler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(middleware.Recover())
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.SetRequest(withTag(c.Request(), "echo"))
			return next(c)
		}
	})

	e.GET("/health", func(c echo.Context) error {
		health(c.Response(), "echo", c.Path())
		return nil
	})
	e.GET("/users/:id", func(c echo.Context) error {
		user(c.Response(), "echo", c.Path(), c.Param("id"))
		return nil
	})
	e.GET("/users/:id/orders/:order", func(c echo.Context) error {
		order(c.Response(), "echo", c.Path(), c.Param("id"), c.Param("order"))
		return nil
	})
	e.GET("/files/*", func(c echo.Context) error {
		file(c.Response(), "echo", c.Path(), c.Param("*"))
		return nil
	})
	v1 := e.Group("/api/v1")
	v1.GET("/items/:id", func(c echo.Context) error {
		getItem(c.Response(), "echo", c.Path(), c.Param("id"))
		return nil
	})
	v1.POST("/items", func(c echo.Context) error {
		createItem(c.Response(), "echo", c.Path())
		return nil
	})
	e.GET("/fail", func(c echo.Context) error {
		fail(c.Response(), "echo", c.Path())
		return nil
	})
	return e
}
