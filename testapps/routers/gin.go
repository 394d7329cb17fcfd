package main

import (
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// ginHandler: gin in release mode, quiet, with gin.Recovery() and a middleware that gives
// the request a new context; /api/v1 is a Group.
func ginHandler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.Recovery(), func(c *gin.Context) {
		c.Request = withTag(c.Request, "gin")
		c.Next()
	})

	r.GET("/health", func(c *gin.Context) {
		health(c.Writer, "gin", c.FullPath())
	})
	r.GET("/users/:id", func(c *gin.Context) {
		user(c.Writer, "gin", c.FullPath(), c.Param("id"))
	})
	r.GET("/users/:id/orders/:order", func(c *gin.Context) {
		order(c.Writer, "gin", c.FullPath(), c.Param("id"), c.Param("order"))
	})
	r.GET("/files/*filepath", func(c *gin.Context) {
		file(c.Writer, "gin", c.FullPath(), c.Param("filepath"))
	})
	v1 := r.Group("/api/v1")
	v1.GET("/items/:id", func(c *gin.Context) {
		getItem(c.Writer, "gin", c.FullPath(), c.Param("id"))
	})
	v1.POST("/items", func(c *gin.Context) {
		createItem(c.Writer, "gin", c.FullPath())
	})
	r.GET("/fail", func(c *gin.Context) {
		fail(c.Writer, "gin", c.FullPath())
	})
	return r
}
